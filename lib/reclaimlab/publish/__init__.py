"""The executed labs published: `site` builds the static site (build/site/) that reads with nothing installed."""
