# regexp-nested/helper_skip.py
