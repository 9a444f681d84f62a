# regexp-nested/not_ignored_dir/z.py
