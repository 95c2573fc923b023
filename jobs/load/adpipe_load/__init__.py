"""load, where a row is stored: a window's backup validated into ad_impressions."""
