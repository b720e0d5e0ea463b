-- Per-asset label counts after an UPDATE on shapes. A statement-level trigger with a transition
-- table recomputes the counts of the touched assets from shapes (refresh_label_counts), so a COPY
-- of 10,000 shapes costs one UPDATE, not 10,000.
CREATE OR REPLACE FUNCTION pgsearch.shapes_after_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(
        ARRAY(SELECT asset_id FROM new_rows UNION SELECT asset_id FROM old_rows));
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.shapes_after_update() IS
    'Trigger function of shapes_label_counts_update: keeps assets.label_counts after an UPDATE on shapes.';

CREATE OR REPLACE TRIGGER shapes_label_counts_update AFTER UPDATE ON pgsearch.shapes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_update();
