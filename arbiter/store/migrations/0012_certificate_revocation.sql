-- A revoked certificate is refused from the moment it is revoked, by the
-- API and the dashboard. A serial the registry did not sign (an operator
-- bundle made from the CA's files) gets a row when it is revoked.
ALTER TABLE certificates ADD COLUMN revoked_us INTEGER;
