-- Per-asset label counts after an INSERT on shapes. A statement-level trigger with a transition
-- table recomputes the counts of the touched assets from shapes (refresh_label_counts), so a COPY
-- of 10,000 shapes costs one UPDATE, not 10,000.
CREATE OR REPLACE FUNCTION pgsearch.shapes_after_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(ARRAY(SELECT asset_id FROM new_rows));
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.shapes_after_insert() IS
    'Trigger function of shapes_label_counts_insert: keeps assets.label_counts after an INSERT on shapes.';

CREATE OR REPLACE TRIGGER shapes_label_counts_insert AFTER INSERT ON pgsearch.shapes
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.shapes_after_insert();
