from fractal.cli import main

main()
