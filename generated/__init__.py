"""Code generated from specs/ by `optforge generate`. Do not edit."""
