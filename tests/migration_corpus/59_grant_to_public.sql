-- expect: grant-widened:error
GRANT SELECT ON products TO PUBLIC;
