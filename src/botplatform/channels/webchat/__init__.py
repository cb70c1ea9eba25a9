"""The website chat widget: a channel whose both ends are ours (the widget on a customer's
site, and the visitor API it talks to)."""
