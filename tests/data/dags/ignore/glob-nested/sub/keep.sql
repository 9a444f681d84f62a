# glob-nested/sub/keep.sql
