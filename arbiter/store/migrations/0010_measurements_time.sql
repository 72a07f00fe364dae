-- The book's cache of who measured which path (quality.Paths) reads the
-- recent measurements when the arbiter starts: by time, not the whole table.
CREATE INDEX measurements_time ON measurements (measured_us);
