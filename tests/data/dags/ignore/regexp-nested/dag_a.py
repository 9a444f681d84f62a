# regexp-nested/dag_a.py
