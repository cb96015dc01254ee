-- expect: table-rewrite:error:30, constraint-violated:error:30
ALTER TABLE products ALTER COLUMN title TYPE varchar(3);
