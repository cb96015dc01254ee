-- expect: breaking-change:error, data-loss:error
ALTER TABLE products DROP COLUMN description;
