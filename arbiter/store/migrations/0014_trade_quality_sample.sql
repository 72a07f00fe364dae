-- A trade's recorded path quality carries its sample (issue 23: no figure
-- without the sample behind it): the probes the loss counts and the
-- standard errors of the latency and jitter means. NULL: recorded before,
-- or not said by the measurements.
ALTER TABLE trades ADD COLUMN quality_probes INTEGER;
ALTER TABLE trades ADD COLUMN latency_err_us INTEGER;
ALTER TABLE trades ADD COLUMN jitter_err_us INTEGER;
