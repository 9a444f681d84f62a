# regexp-nested/sql/query.sql
