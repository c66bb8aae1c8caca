"""chainrule.training"""
