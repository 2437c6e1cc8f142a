"""Emitters: each turns analysed rules into one kind of file under generated/."""
