-- expect:
ALTER TABLE products ALTER COLUMN description SET DEFAULT 'to be written';
