# bash completion for hostdev (scripts/gen-completions.py writes it; hostdev answers each TAB)
_hostdev_completion() {
    local IFS=$'\n' cur=${COMP_WORDS[COMP_CWORD]}
    local -a reply
    # hostdev reads the line itself and trims its answers to the text after the last
    # COMP_WORDBREAKS character (":" in PCI addresses), as __ltrim_colon_completions does
    reply=($(env _HOSTDEV_COMPLETE=complete_bash COMP_LINE="$COMP_LINE" COMP_POINT="$COMP_POINT" \
        COMP_WORDBREAKS="$COMP_WORDBREAKS" "$1" 2>/dev/null))
    case ${reply[0]} in
        file) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -f -- "$cur")) ;;
        dir) compopt -o filenames 2>/dev/null; COMPREPLY=($(compgen -d -- "$cur")) ;;
        *) COMPREPLY=("${reply[@]:1}") ;;
    esac
}
complete -F _hostdev_completion hostdev
