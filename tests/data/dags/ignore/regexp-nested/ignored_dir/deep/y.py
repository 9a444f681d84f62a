# regexp-nested/ignored_dir/deep/y.py
