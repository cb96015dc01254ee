-- expect: not-null-without-default:error:30
ALTER TABLE products ADD COLUMN sku_prefix text NOT NULL;
