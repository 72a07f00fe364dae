-- PostgreSQL's version of 0009_book_indexes.sql: an expression in an index
-- key is parenthesized.
-- Indexes the order book writes with every commit, made to touch few
-- pages: a group commit writes every page it dirties to the WAL, and
-- entries spread over the whole index dirty one page each.

-- A member's events are read after a sequence number; the index leads with
-- the block of 4096 sequence numbers, so a commit's events land in the few
-- pages of the current block instead of one page per member. A reader seeks
-- once per block (book.Events).
DROP INDEX events_member;
CREATE INDEX events_member ON events ((seq / 4096), member_id, seq);
-- Settlement's notices (use and credit, types 10 and up) are rare and read
-- as a member's latest one.
CREATE INDEX events_notice ON events (member_id, seq) WHERE type >= 10;

-- Only open orders are ever looked up by status (1 is book.Open); an
-- order that is filled or cancelled the moment it arrives is not indexed.
DROP INDEX orders_open;
CREATE INDEX orders_open ON orders (status) WHERE status = 1;
