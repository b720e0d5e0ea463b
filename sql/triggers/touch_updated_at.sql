-- updated_at of assets and datasets: the time of the row's last change, whoever wrote it.
CREATE OR REPLACE FUNCTION pgsearch.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END $$;

COMMENT ON FUNCTION pgsearch.touch_updated_at() IS
    'Trigger function of assets_touch and datasets_touch: sets updated_at on every update of a row.';

CREATE OR REPLACE TRIGGER assets_touch BEFORE UPDATE ON pgsearch.assets
    FOR EACH ROW EXECUTE FUNCTION pgsearch.touch_updated_at();
CREATE OR REPLACE TRIGGER datasets_touch BEFORE UPDATE ON pgsearch.datasets
    FOR EACH ROW EXECUTE FUNCTION pgsearch.touch_updated_at();
