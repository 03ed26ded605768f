"""Patients (children and young people) and which organisations may see them."""
