from tinyforge.lsp import main

main()
