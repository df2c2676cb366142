"""Neighbourhood committee (居委会) exports."""
