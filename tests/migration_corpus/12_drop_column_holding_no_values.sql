-- expect: breaking-change:error
ALTER TABLE knowledge_base DROP COLUMN source_url;
