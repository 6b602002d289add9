"""Who may do what: access controllers (htpasswd, token, silly), access rules, and their seam."""
