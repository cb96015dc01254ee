-- expect: table-rewrite:error, data-loss:error
ALTER TABLE products ALTER COLUMN title TYPE varchar(3);
