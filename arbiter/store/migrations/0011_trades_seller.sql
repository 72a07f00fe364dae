-- No query looks trades up by seller (a member's trades are listed by
-- scanning, the credit check reads by buyer): the index only cost every
-- trade a random page write in the book's commits.
DROP INDEX trades_seller;
