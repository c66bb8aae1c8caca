"""chainrule.decoding"""
