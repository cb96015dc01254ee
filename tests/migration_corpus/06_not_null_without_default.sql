-- expect: not-null-without-default:error
ALTER TABLE products ADD COLUMN sku_prefix text NOT NULL;
