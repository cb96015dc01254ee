-- expect: breaking-change:error, data-loss:error:30
ALTER TABLE products DROP COLUMN description;
