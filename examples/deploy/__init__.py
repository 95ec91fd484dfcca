"""The deployment recipe: nginx in front of two gunicorn instances sharing one Redis."""
