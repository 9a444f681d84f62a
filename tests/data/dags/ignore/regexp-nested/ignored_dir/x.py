# regexp-nested/ignored_dir/x.py
