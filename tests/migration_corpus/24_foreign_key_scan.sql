-- expect: constraint-scan:warning:53
ALTER TABLE knowledge_base ADD CONSTRAINT fk_kb_product FOREIGN KEY (product_id) REFERENCES products (id);
