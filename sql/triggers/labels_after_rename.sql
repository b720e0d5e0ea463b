-- Counts are keyed by label name, so a rename must rewrite the assets that carry the label.
CREATE OR REPLACE FUNCTION pgsearch.labels_after_rename() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgsearch.refresh_label_counts(
        ARRAY(SELECT DISTINCT s.asset_id FROM pgsearch.shapes AS s
               WHERE s.label_id IN (SELECT id FROM new_rows)));
    RETURN NULL;
END $$;

COMMENT ON FUNCTION pgsearch.labels_after_rename() IS
    'Trigger function of labels_rename: rewrites assets.label_counts of the assets carrying a renamed label.';

CREATE OR REPLACE TRIGGER labels_rename AFTER UPDATE ON pgsearch.labels
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION pgsearch.labels_after_rename();
