-- expect: data-loss:error:30
DELETE FROM products WHERE status = 'draft' OR status = 'active' OR status = 'archived';
