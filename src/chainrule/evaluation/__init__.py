"""chainrule.evaluation"""
