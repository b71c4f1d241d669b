"""The article's three examples as standalone user scripts (copied and run by `ckptdoctor demo`)."""
