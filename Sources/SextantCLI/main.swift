// placeholder
print("sextant")
