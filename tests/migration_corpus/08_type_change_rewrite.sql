-- expect: table-rewrite:error:30
ALTER TABLE products ALTER COLUMN description TYPE varchar(100000);
