# fish completion for hostdev (scripts/gen-completions.py writes it; hostdev answers each TAB)
function __hostdev_complete
    set -l words (commandline -opc)
    set -l reply (env _HOSTDEV_COMPLETE=complete_fish $words (commandline -ct) 2>/dev/null)
    switch "$reply[1]"
        case file
            __fish_complete_path (commandline -ct)
        case dir
            __fish_complete_directories (commandline -ct)
        case '*'
            printf '%s\n' $reply[2..-1]
    end
end
complete -c hostdev -f -a '(__hostdev_complete)'
