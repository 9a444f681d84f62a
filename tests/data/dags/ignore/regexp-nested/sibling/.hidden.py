# regexp-nested/sibling/.hidden.py
