"""`trail web`: watch and steer every trail of this user from a browser (see app.py)."""
