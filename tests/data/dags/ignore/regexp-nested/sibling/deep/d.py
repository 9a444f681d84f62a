# regexp-nested/sibling/deep/d.py
