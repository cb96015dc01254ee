-- expect: data-loss:error
DELETE FROM products WHERE status = 'draft' OR status = 'active' OR status = 'archived';
