-- Per-asset label counts after an DELETE on shapes. A statement-level trigger with a transition
-- table recomputes the counts of the touched assets from shapes (refresh_label_counts), so a COPY
-- of 10,000 shapes costs one UPDATE, not 10,000.
CREATE OR REPLACE FUNCTION pgsearch.shapes_after_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(ARRAY(SELECT asset_id FROM old_rows));
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.shapes_after_delete() IS
    'Trigger function of shapes_label_counts_delete: keeps assets.label_counts after an DELETE on shapes.';

CREATE OR REPLACE TRIGGER shapes_label_counts_delete AFTER DELETE ON pgsearch.shapes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_delete();
