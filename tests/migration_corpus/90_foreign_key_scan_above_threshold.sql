-- large-rows: 20
-- expect: constraint-scan:error:53
ALTER TABLE knowledge_base ADD CONSTRAINT fk_knowledge_base_product FOREIGN KEY (product_id) REFERENCES products (id);
