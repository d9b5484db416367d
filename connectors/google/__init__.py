"""Google Workspace: Gmail, People and the Admin SDK Directory, as each rep through domain-wide delegation."""
