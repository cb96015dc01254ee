-- expect: table-rewrite:error
ALTER TABLE products ALTER COLUMN description TYPE varchar(100000);
