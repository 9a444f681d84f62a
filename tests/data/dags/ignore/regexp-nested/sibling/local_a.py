# regexp-nested/sibling/local_a.py
