# regexp-nested/a  b.py
