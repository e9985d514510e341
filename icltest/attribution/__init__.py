"""Attribution: direct logit attribution, the logit lens, and attribution patching of heads."""
