"""The command tree as data, written by scripts/gen-completions.py from the typer app (do not
edit; tests/test_completions.py fails when it is stale). `hostdev --help` lists the commands
from it without importing them (cli/app.py); a TAB is answered from it (cli/complete.py)."""
# ruff: noqa: E501

TREE = {'help': 'Prepare Linux hosts for PCI and mediated-device passthrough (KubeVirt, libvirt).',
 'options': [{'names': ['--root'],
              'value': True,
              'metavar': 'PATH',
              'help': 'Act on the tree under PATH, or on a recording (hostdev record FILE), instead of / (env '
                      'HOSTDEV_ROOT).'},
             {'names': ['--version'], 'value': False, 'help': 'Print the version and exit.'},
             {'names': ['--output', '-o'],
              'value': True,
              'choices': ['table', 'json', 'yaml'],
              'help': 'Output format of the command (table, json or yaml), as if given after it.'},
             {'names': ['--install-completion'],
              'value': False,
              'help': 'Install completion for the current shell.'},
             {'names': ['--show-completion'],
              'value': False,
              'help': 'Show completion for the current shell, to copy it or customize the installation.'},
             {'names': ['-h', '--help'], 'value': False, 'help': 'Show this message and exit.'}],
 'args': [],
 'commands': {'check': {'help': 'Check CPU virtualization, the IOMMU, kernel arguments, vfio and IOMMU-group '
                                'viability;\n'
                                'with ADDR, whether each device will work in a VM.',
                        'options': [{'names': ['--stack'],
                                     'value': True,
                                     'metavar': 'kubevirt|libvirt',
                                     'choices': ['kubevirt', 'libvirt'],
                                     'help': 'Whose settings the fixes name (the VM spec or the domain XML).'},
                                    {'names': ['--per-vm'],
                                     'value': True,
                                     'metavar': 'N',
                                     'help': 'How many such devices one VM gets (the MMIO window grows with '
                                             'them).'},
                                    {'names': ['--output', '-o'],
                                     'value': True,
                                     'choices': ['table', 'json', 'yaml'],
                                     'help': 'Output format: table, json or yaml. (default table; may also come '
                                             'before the command)'},
                                    {'names': ['-h', '--help'],
                                     'value': False,
                                     'help': 'Show this message and exit.'}],
                        'args': [{'metavar': '[ADDR]...', 'nargs': -1}],
                        'commands': {}},
              'bind': {'help': 'Bind devices to vfio-pci (driver_override, unbind, probe, verify), whole IOMMU '
                               'groups.',
                       'options': [{'names': ['--device'],
                                    'value': True,
                                    'metavar': 'VVVV:DDDD',
                                    'help': 'Every function with this ID (repeatable).'},
                                   {'names': ['--vendor'],
                                    'value': True,
                                    'metavar': 'VENDOR',
                                    'help': 'Every function of this vendor: its ID (10de) or its name in pci.ids '
                                            '(nvidia).'},
                                   {'names': ['--class'],
                                    'value': True,
                                    'metavar': 'CLASS',
                                    'help': 'Every function of this class (gpu, net, accel, HEX); with --vendor or '
                                            '--device: those that match both.'},
                                   {'names': ['--driver'], 'value': True, 'help': 'Target driver.'},
                                   {'names': ['--persist'],
                                    'value': False,
                                    'help': 'Re-apply at every boot (udev rule + systemd unit, '
                                            '/etc/hostdev/bindings.d).'},
                                   {'names': ['--persisted'],
                                    'value': False,
                                    'help': 'Bind every persistent binding now (what the boot-time unit runs).'},
                                   {'names': ['--dry-run', '-n'],
                                    'value': False,
                                    'help': 'Print the plan; change nothing (Ansible check mode).'},
                                   {'names': ['--force'],
                                    'value': False,
                                    'help': 'Override the safety interlocks (boot VGA, mounted disk, routed NIC, '
                                            'partial IOMMU group).'},
                                   {'names': ['--output', '-o'],
                                    'value': True,
                                    'choices': ['table', 'json', 'yaml'],
                                    'help': 'Output format: table, json or yaml. (default table; may also come '
                                            'before the command)'},
                                   {'names': ['-h', '--help'],
                                    'value': False,
                                    'help': 'Show this message and exit.'}],
                       'args': [{'metavar': 'ADDR...', 'nargs': -1}],
                       'commands': {}},
              'unbind': {'help': 'Leave devices without a driver (the driver they had is recorded for restore).',
                         'options': [{'names': ['--dry-run', '-n'],
                                      'value': False,
                                      'help': 'Print the plan; change nothing (Ansible check mode).'},
                                     {'names': ['--force'],
                                      'value': False,
                                      'help': 'Override the safety interlocks (boot VGA, mounted disk, routed NIC, '
                                              'partial IOMMU group).'},
                                     {'names': ['--output', '-o'],
                                      'value': True,
                                      'choices': ['table', 'json', 'yaml'],
                                      'help': 'Output format: table, json or yaml. (default table; may also come '
                                              'before the command)'},
                                     {'names': ['-h', '--help'],
                                      'value': False,
                                      'help': 'Show this message and exit.'}],
                         'args': [{'metavar': 'ADDR...', 'nargs': -1}],
                         'commands': {}},
              'restore': {'help': 'Give devices back to the driver they had before hostdev changed them.',
                          'options': [{'names': ['--all'], 'value': False, 'help': 'Every device hostdev changed.'},
                                      {'names': ['--dry-run', '-n'],
                                       'value': False,
                                       'help': 'Print the plan; change nothing (Ansible check mode).'},
                                      {'names': ['--force'],
                                       'value': False,
                                       'help': 'Override the safety interlocks (boot VGA, mounted disk, routed '
                                               'NIC, partial IOMMU group).'},
                                      {'names': ['--output', '-o'],
                                       'value': True,
                                       'choices': ['table', 'json', 'yaml'],
                                       'help': 'Output format: table, json or yaml. (default table; may also come '
                                               'before the command)'},
                                      {'names': ['-h', '--help'],
                                       'value': False,
                                       'help': 'Show this message and exit.'}],
                          'args': [{'metavar': 'ADDR...', 'nargs': -1}],
                          'commands': {}},
              'bindings': {'help': "What hostdev changed (its journal), with each device's driver now.",
                           'options': [{'names': ['--output', '-o'],
                                        'value': True,
                                        'choices': ['table', 'json', 'yaml'],
                                        'help': 'Output format: table, json or yaml. (default table; may also come '
                                                'before the command)'},
                                       {'names': ['-h', '--help'],
                                        'value': False,
                                        'help': 'Show this message and exit.'}],
                           'args': [],
                           'commands': {}},
              'inventory': {'help': "This host's devices, IOMMU groups, mdev types, mdevs, pci.ids version and "
                                    'labels, for\n'
                                    'hostdev kubevirt merge.',
                            'options': [{'names': ['--label'],
                                         'value': True,
                                         'metavar': 'KEY=VALUE',
                                         'help': 'A node label of this host (repeatable).'},
                                        {'names': ['--hostname'],
                                         'value': True,
                                         'help': "The node name (default: the host's name)."},
                                        {'names': ['--pci-ids'],
                                         'value': True,
                                         'metavar': 'FILE',
                                         'help': 'Name devices from this pci.ids.'},
                                        {'names': ['--output', '-o'],
                                         'value': True,
                                         'choices': ['table', 'json', 'yaml'],
                                         'help': 'json, yaml, or table (a summary). (default json; may also come '
                                                 'before the command)'},
                                        {'names': ['-h', '--help'],
                                         'value': False,
                                         'help': 'Show this message and exit.'}],
                            'args': [],
                            'commands': {}},
              'apply': {'help': 'Bring the host to a profile (IOMMU arguments, modules, bindings, mdevs) in one '
                                'idempotent plan;\n'
                                'reports changed and reboot_required.',
                        'options': [{'names': ['--dry-run', '-n'],
                                     'value': False,
                                     'help': 'Print the plan; change nothing (Ansible check mode).'},
                                    {'names': ['--output', '-o'],
                                     'value': True,
                                     'choices': ['table', 'json', 'yaml'],
                                     'help': 'Output format: table, json or yaml. (default table; may also come '
                                             'before the command)'},
                                    {'names': ['-h', '--help'],
                                     'value': False,
                                     'help': 'Show this message and exit.'}],
                        'args': [{'metavar': 'PROFILE.yaml', 'nargs': 1}],
                        'commands': {}},
              'record': {'help': 'Record what hostdev reads of this host (the PCI, IOMMU and mdev parts of sysfs, '
                                 'the\n'
                                 'relevant /proc and /etc files, pci.ids) into one file, read-only towards the '
                                 "host; 'hostdev\n"
                                 "--root FILE COMMAND' then answers as on the host (for a bug report, or KubeVirt "
                                 'planning\n'
                                 'away from the host). Changes nothing; needs no root (sysfs is world-readable).',
                         'options': [{'names': ['--output', '-o'],
                                      'value': True,
                                      'choices': ['table', 'json', 'yaml'],
                                      'help': 'Output format: table, json or yaml. (default table; may also come '
                                              'before the command)'},
                                     {'names': ['-h', '--help'],
                                      'value': False,
                                      'help': 'Show this message and exit.'}],
                         'args': [{'metavar': 'FILE', 'nargs': 1}],
                         'commands': {}},
              'devices': {'help': 'List PCI functions (like lspci -Dnnk, with IOMMU groups and SR-IOV).',
                          'options': [{'names': ['--vendor'],
                                       'value': True,
                                       'metavar': 'VENDOR',
                                       'help': 'Only this vendor: its ID (10de) or its name in pci.ids (nvidia).'},
                                      {'names': ['--device'],
                                       'value': True,
                                       'metavar': 'VVVV:DDDD',
                                       'help': 'Only this ID (10de:1eb8).'},
                                      {'names': ['--class'],
                                       'value': True,
                                       'metavar': 'CLASS',
                                       'help': 'gpu, net, storage, accel, usb, or a hex class code.'},
                                      {'names': ['--driver'],
                                       'value': True,
                                       'metavar': 'NAME',
                                       'help': "Only devices on this driver ('none' for unbound)."},
                                      {'names': ['--iommu-group'],
                                       'value': True,
                                       'metavar': 'N',
                                       'help': 'Only this IOMMU group.'},
                                      {'names': ['--pci-ids'],
                                       'value': True,
                                       'metavar': 'FILE',
                                       'help': "Use this pci.ids instead of the host's (hwdata)."},
                                      {'names': ['--output', '-o'],
                                       'value': True,
                                       'choices': ['table', 'json', 'yaml'],
                                       'help': 'Output format: table, json or yaml. (default table; may also come '
                                               'before the command)'},
                                      {'names': ['-h', '--help'],
                                       'value': False,
                                       'help': 'Show this message and exit.'}],
                          'args': [],
                          'commands': {'show': {'help': 'Everything about one device, including the other members '
                                                        'of its IOMMU group.',
                                                'options': [{'names': ['--pci-ids'],
                                                             'value': True,
                                                             'metavar': 'FILE',
                                                             'help': "Use this pci.ids instead of the host's "
                                                                     '(hwdata).'},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'Output format: table, json or yaml. (default '
                                                                     'table; may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [{'metavar': 'ADDR', 'nargs': 1}],
                                                'commands': {}}}},
              'iommu': {'help': 'IOMMU groups and the IOMMU kernel arguments.',
                        'options': [{'names': ['-h', '--help'],
                                     'value': False,
                                     'help': 'Show this message and exit.'}],
                        'args': [],
                        'commands': {'groups': {'help': 'List IOMMU groups and their member devices (a group is '
                                                        'assigned to a VM whole).',
                                                'options': [{'names': ['--pci-ids'],
                                                             'value': True,
                                                             'metavar': 'FILE',
                                                             'help': 'Name classes from this pci.ids instead of '
                                                                     "the host's (hwdata)."},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'Output format: table, json or yaml. (default '
                                                                     'table; may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [],
                                                'commands': {}},
                                     'enable': {'help': 'Add the IOMMU kernel arguments to the boot configuration '
                                                        'with its own tool (GRUB drop-in or\n'
                                                        '/etc/default/grub + update-grub/grub2-mkconfig; grubby on '
                                                        'BLS). Idempotent; reboot to apply. On a\n'
                                                        'virtual machine without a virtual IOMMU nothing is '
                                                        'written (and no reboot needed) unless --force.',
                                                'options': [{'names': ['--passthrough'],
                                                             'value': False,
                                                             'help': 'Also add iommu=pt (host devices skip '
                                                                     'translation; DMA for VMs is unchanged).'},
                                                            {'names': ['--arg'],
                                                             'value': True,
                                                             'metavar': 'K=V',
                                                             'help': 'Another kernel argument to add, e.g. '
                                                                     'vfio-pci.ids=10de:1eb8 (repeatable).'},
                                                            {'names': ['--replace'],
                                                             'value': False,
                                                             'help': 'Replace an argument configured with another '
                                                                     'value (intel_iommu=off).'},
                                                            {'names': ['--force'],
                                                             'value': False,
                                                             'help': 'Write the arguments even on a virtual '
                                                                     'machine without a virtual IOMMU (they do '
                                                                     'nothing until the hypervisor adds one).'},
                                                            {'names': ['--dry-run', '-n'],
                                                             'value': False,
                                                             'help': 'Print the diff and the commands; change '
                                                                     'nothing (Ansible check mode).'},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'Output format: table, json or yaml. (default '
                                                                     'table; may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [],
                                                'commands': {}},
                                     'disable': {'help': "Remove exactly the kernel arguments 'hostdev iommu "
                                                         "enable' added (nothing of the administrator's).",
                                                 'options': [{'names': ['--dry-run', '-n'],
                                                              'value': False,
                                                              'help': 'Print the diff and the commands; change '
                                                                      'nothing (Ansible check mode).'},
                                                             {'names': ['--output', '-o'],
                                                              'value': True,
                                                              'choices': ['table', 'json', 'yaml'],
                                                              'help': 'Output format: table, json or yaml. '
                                                                      '(default table; may also come before the '
                                                                      'command)'},
                                                             {'names': ['-h', '--help'],
                                                              'value': False,
                                                              'help': 'Show this message and exit.'}],
                                                 'args': [],
                                                 'commands': {}}}},
              'kubevirt': {'help': 'KubeVirt output: permittedHostDevices, mdev configuration, VMI device blocks.',
                           'options': [{'names': ['-h', '--help'],
                                        'value': False,
                                        'help': 'Show this message and exit.'}],
                           'args': [],
                           'commands': {'permitted': {'help': 'permittedHostDevices for this host (default: '
                                                              'devices on vfio-pci and existing mdevs) or for\n'
                                                              'the hosts of --inventory files, as a CR, merge '
                                                              'patch, JSON patch or snippet.',
                                                      'options': [{'names': ['--device'],
                                                                   'value': True,
                                                                   'metavar': 'VVVV:DDDD',
                                                                   'help': 'Permit this ID (repeatable).'},
                                                                  {'names': ['--vendor'],
                                                                   'value': True,
                                                                   'metavar': 'VENDOR',
                                                                   'help': 'Every device of this vendor (no '
                                                                           'bridges): its ID (10de) or its name in '
                                                                           'pci.ids (nvidia).'},
                                                                  {'names': ['--class'],
                                                                   'value': True,
                                                                   'metavar': 'CLASS',
                                                                   'help': 'gpu, net, storage, accel, usb or a hex '
                                                                           'class.'},
                                                                  {'names': ['--mdev'],
                                                                   'value': True,
                                                                   'metavar': 'TYPE',
                                                                   'help': 'An mdev type by name ("GRID T4-1Q") or '
                                                                           'id (repeatable).'},
                                                                  {'names': ['--all-mdev-types'],
                                                                   'value': False,
                                                                   'help': 'Every mdev type the parents offer.'},
                                                                  {'names': ['--inventory'],
                                                                   'value': True,
                                                                   'metavar': 'FILE',
                                                                   'help': 'Build from this host inventory '
                                                                           '(hostdev inventory -o json; '
                                                                           'repeatable).'},
                                                                  {'names': ['--pci-ids'],
                                                                   'value': True,
                                                                   'metavar': 'FILE',
                                                                   'help': 'Name devices from this pci.ids.'},
                                                                  {'names': ['--format', '-f'],
                                                                   'value': True,
                                                                   'metavar': 'FORMAT',
                                                                   'help': 'cr (a kind: KubeVirt manifest), '
                                                                           'json-patch (kubectl patch --type json) '
                                                                           'or patch (--type merge), both built '
                                                                           "with --merge-with the cluster's CR, "
                                                                           'snippet (permittedHostDevices alone).'},
                                                                  {'names': ['--name'],
                                                                   'value': True,
                                                                   'help': 'metadata.name of the KubeVirt CR (cr '
                                                                           'format).'},
                                                                  {'names': ['--namespace'],
                                                                   'value': True,
                                                                   'help': 'metadata.namespace of the KubeVirt '
                                                                           'CR.'},
                                                                  {'names': ['--merge-with'],
                                                                   'value': True,
                                                                   'metavar': 'FILE',
                                                                   'help': "The cluster's CR (kubectl get kubevirt "
                                                                           '-n kubevirt kubevirt -o yaml) or a '
                                                                           'snippet: keep its entries, add the new '
                                                                           'ones, report unknown keys. Needed by '
                                                                           'the patch formats.'},
                                                                  {'names': ['--naming'],
                                                                   'value': True,
                                                                   'metavar': 'MODE',
                                                                   'help': 'The device plugin that advertises the '
                                                                           'devices: nvidia (NVIDIA '
                                                                           'kubevirt-gpu-device-plugin >= v1.2.2; '
                                                                           'default for 10de with --external), '
                                                                           'nvidia-v1.2.1 (v1.2.0-v1.2.1), '
                                                                           'nvidia-v1.1.2 (v1.1.1-v1.1.2), '
                                                                           'nvidia-legacy (v1.0.x); kubevirt '
                                                                           "(KubeVirt's own plugin; default). The "
                                                                           'older modes read the whole pci.ids: '
                                                                           "pass the plugin image's with "
                                                                           '--pci-ids.'},
                                                                  {'names': ['--resource-name'],
                                                                   'value': True,
                                                                   'metavar': 'SELECTOR=NAME',
                                                                   'help': 'Name one selector yourself: '
                                                                           '10DE:1EB8=nvidia.com/T4 (repeatable).'},
                                                                  {'names': ['--external', '--no-external'],
                                                                   'value': False,
                                                                   'help': 'externalResourceProvider: another '
                                                                           'device plugin advertises the devices.'},
                                                                  {'names': ['--mdev-config'],
                                                                   'value': False,
                                                                   'help': 'Also emit '
                                                                           'mediatedDevicesConfiguration.'},
                                                                  {'names': ['--node-selector'],
                                                                   'value': True,
                                                                   'metavar': 'KEY=VALUE',
                                                                   'help': 'With --mdev-config: '
                                                                           'nodeMediatedDeviceTypes for nodes with '
                                                                           'this label.'},
                                                                  {'names': ['--output', '-o'],
                                                                   'value': True,
                                                                   'choices': ['table', 'json', 'yaml'],
                                                                   'help': 'yaml (the document; notes on stderr) '
                                                                           'or json ({format, document, notes}). '
                                                                           '(default yaml; may also come before '
                                                                           'the command)'},
                                                                  {'names': ['-h', '--help'],
                                                                   'value': False,
                                                                   'help': 'Show this message and exit.'}],
                                                      'args': [{'metavar': '[ADDR...]', 'nargs': -1}],
                                                      'commands': {}},
                                        'merge': {'help': 'One cluster CR from many host inventories: union of '
                                                          'selectors, one name per selector\n'
                                                          '(conflicts are errors), nodeMediatedDeviceTypes per '
                                                          'node label.',
                                                  'options': [{'names': ['--device'],
                                                               'value': True,
                                                               'metavar': 'VVVV:DDDD',
                                                               'help': 'Permit this ID (repeatable).'},
                                                              {'names': ['--vendor'],
                                                               'value': True,
                                                               'metavar': 'VENDOR',
                                                               'help': 'Every device of this vendor (no bridges): '
                                                                       'its ID (10de) or its name in pci.ids '
                                                                       '(nvidia).'},
                                                              {'names': ['--class'],
                                                               'value': True,
                                                               'metavar': 'CLASS',
                                                               'help': 'gpu, net, storage, accel, usb or a hex '
                                                                       'class.'},
                                                              {'names': ['--mdev'],
                                                               'value': True,
                                                               'metavar': 'TYPE',
                                                               'help': 'An mdev type by name ("GRID T4-1Q") or id '
                                                                       '(repeatable).'},
                                                              {'names': ['--all-mdev-types'],
                                                               'value': False,
                                                               'help': 'Every mdev type the parents offer.'},
                                                              {'names': ['--pci-ids'],
                                                               'value': True,
                                                               'metavar': 'FILE',
                                                               'help': 'Name devices from this pci.ids.'},
                                                              {'names': ['--format', '-f'],
                                                               'value': True,
                                                               'metavar': 'FORMAT',
                                                               'help': 'cr (a kind: KubeVirt manifest), json-patch '
                                                                       '(kubectl patch --type json) or patch '
                                                                       '(--type merge), both built with '
                                                                       "--merge-with the cluster's CR, snippet "
                                                                       '(permittedHostDevices alone).'},
                                                              {'names': ['--name'],
                                                               'value': True,
                                                               'help': 'metadata.name of the KubeVirt CR (cr '
                                                                       'format).'},
                                                              {'names': ['--namespace'],
                                                               'value': True,
                                                               'help': 'metadata.namespace of the KubeVirt CR.'},
                                                              {'names': ['--merge-with'],
                                                               'value': True,
                                                               'metavar': 'FILE',
                                                               'help': "The cluster's CR (kubectl get kubevirt -n "
                                                                       'kubevirt kubevirt -o yaml) or a snippet: '
                                                                       'keep its entries, add the new ones, report '
                                                                       'unknown keys. Needed by the patch '
                                                                       'formats.'},
                                                              {'names': ['--naming'],
                                                               'value': True,
                                                               'metavar': 'MODE',
                                                               'help': 'The device plugin that advertises the '
                                                                       'devices: nvidia (NVIDIA '
                                                                       'kubevirt-gpu-device-plugin >= v1.2.2; '
                                                                       'default for 10de with --external), '
                                                                       'nvidia-v1.2.1 (v1.2.0-v1.2.1), '
                                                                       'nvidia-v1.1.2 (v1.1.1-v1.1.2), '
                                                                       'nvidia-legacy (v1.0.x); kubevirt '
                                                                       "(KubeVirt's own plugin; default). The "
                                                                       'older modes read the whole pci.ids: pass '
                                                                       "the plugin image's with --pci-ids."},
                                                              {'names': ['--resource-name'],
                                                               'value': True,
                                                               'metavar': 'SELECTOR=NAME',
                                                               'help': 'Name one selector yourself: '
                                                                       '10DE:1EB8=nvidia.com/T4 (repeatable).'},
                                                              {'names': ['--external', '--no-external'],
                                                               'value': False,
                                                               'help': 'externalResourceProvider: another device '
                                                                       'plugin advertises the devices.'},
                                                              {'names': ['--mdev-config'],
                                                               'value': False,
                                                               'help': 'Also emit mediatedDevicesConfiguration.'},
                                                              {'names': ['--output', '-o'],
                                                               'value': True,
                                                               'choices': ['table', 'json', 'yaml'],
                                                               'help': 'yaml (the document; notes on stderr) or '
                                                                       'json ({format, document, notes}). (default '
                                                                       'yaml; may also come before the command)'},
                                                              {'names': ['-h', '--help'],
                                                               'value': False,
                                                               'help': 'Show this message and exit.'}],
                                                  'args': [{'metavar': 'INVENTORY...', 'nargs': -1}],
                                                  'commands': {}},
                                        'vmi': {'help': 'The gpus/hostDevices block of a VMI (or a whole minimal '
                                                        'VM) for permitted resources. The\n'
                                                        'names are checked against what this host permits '
                                                        "('kubevirt permitted'): a name that differs\n"
                                                        'from a permitted one in case or by a typo is refused, '
                                                        'naming the permitted one.',
                                                'options': [{'names': ['--gpu'],
                                                             'value': True,
                                                             'metavar': 'RESOURCE[:NAME]',
                                                             'help': 'A gpus entry for this resourceName '
                                                                     '(repeatable).'},
                                                            {'names': ['--hostdev'],
                                                             'value': True,
                                                             'metavar': 'RESOURCE[:NAME]',
                                                             'help': 'A hostDevices entry for this resourceName '
                                                                     '(repeatable).'},
                                                            {'names': ['--format', '-f'],
                                                             'value': True,
                                                             'metavar': 'FORMAT',
                                                             'help': 'snippet (spec.domain.devices), vmi or vm (a '
                                                                     'minimal manifest).'},
                                                            {'names': ['--vm-name'],
                                                             'value': True,
                                                             'help': 'metadata.name for --format vmi/vm.'},
                                                            {'names': ['--memory'],
                                                             'value': True,
                                                             'help': 'Guest memory for --format vmi/vm.'},
                                                            {'names': ['--no-check'],
                                                             'value': False,
                                                             'help': 'Do not compare the names with the resources '
                                                                     'this host permits (a VM for another node).'},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'yaml (the document; notes on stderr) or json '
                                                                     '({format, document, notes}). (default yaml; '
                                                                     'may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [],
                                                'commands': {}}}},
              'mdev': {'help': 'Mediated devices (vGPUs): types, instances, create and remove.',
                       'options': [{'names': ['-h', '--help'],
                                    'value': False,
                                    'help': 'Show this message and exit.'}],
                       'args': [],
                       'commands': {'types': {'help': 'The mdev types each parent offers (mdev_supported_types), '
                                                      'and NVIDIA vGPU types on SR-IOV VFs.',
                                              'options': [{'names': ['--name'],
                                                           'value': True,
                                                           'help': 'Only types with this name ("GRID T4-2A"; '
                                                                   "KubeVirt's spaces-to-_ form matches too)."},
                                                          {'names': ['--output', '-o'],
                                                           'value': True,
                                                           'choices': ['table', 'json', 'yaml'],
                                                           'help': 'Output format: table, json or yaml. (default '
                                                                   'table; may also come before the command)'},
                                                          {'names': ['-h', '--help'],
                                                           'value': False,
                                                           'help': 'Show this message and exit.'}],
                                              'args': [{'metavar': '[PARENT...]', 'nargs': -1}],
                                              'commands': {}},
                                    'list': {'help': 'Existing mdevs, and those mdevctl has defined (persistent) '
                                                     'but that are not running.',
                                             'options': [{'names': ['--output', '-o'],
                                                          'value': True,
                                                          'choices': ['table', 'json', 'yaml'],
                                                          'help': 'Output format: table, json or yaml. (default '
                                                                  'table; may also come before the command)'},
                                                         {'names': ['-h', '--help'],
                                                          'value': False,
                                                          'help': 'Show this message and exit.'}],
                                             'args': [],
                                             'commands': {}},
                                    'create': {'help': 'Create mdevs of one type on one parent; print their UUIDs.',
                                               'options': [{'names': ['--parent'],
                                                            'value': True,
                                                            'metavar': 'PARENT',
                                                            'help': 'Parent device (PCI address or mdev_bus '
                                                                    'name).'},
                                                           {'names': ['--type'],
                                                            'value': True,
                                                            'metavar': 'TYPE',
                                                            'help': 'Type id (nvidia-226, mtty-2).'},
                                                           {'names': ['--name'],
                                                            'value': True,
                                                            'help': 'Type name ("GRID T4-2A").'},
                                                           {'names': ['--uuid'],
                                                            'value': True,
                                                            'help': 'UUID to use (repeatable); default random.'},
                                                           {'names': ['--count'],
                                                            'value': True,
                                                            'help': 'How many mdevs.'},
                                                           {'names': ['--persist'],
                                                            'value': False,
                                                            'help': 'Also write mdevctl definitions (start at '
                                                                    'boot).'},
                                                           {'names': ['--dry-run', '-n'],
                                                            'value': False,
                                                            'help': 'Print the plan; change nothing.'},
                                                           {'names': ['--output', '-o'],
                                                            'value': True,
                                                            'choices': ['table', 'json', 'yaml'],
                                                            'help': 'Output format: table, json or yaml. (default '
                                                                    'table; may also come before the command)'},
                                                           {'names': ['-h', '--help'],
                                                            'value': False,
                                                            'help': 'Show this message and exit.'}],
                                               'args': [],
                                               'commands': {}},
                                    'remove': {'help': 'Remove mdevs (refused while a VM has one open) and their '
                                                       'mdevctl definitions.',
                                               'options': [{'names': ['--parent'],
                                                            'value': True,
                                                            'metavar': 'PARENT',
                                                            'help': 'Every mdev of this parent.'},
                                                           {'names': ['--dry-run', '-n'],
                                                            'value': False,
                                                            'help': 'Print the plan; change nothing.'},
                                                           {'names': ['--output', '-o'],
                                                            'value': True,
                                                            'choices': ['table', 'json', 'yaml'],
                                                            'help': 'Output format: table, json or yaml. (default '
                                                                    'table; may also come before the command)'},
                                                           {'names': ['-h', '--help'],
                                                            'value': False,
                                                            'help': 'Show this message and exit.'}],
                                               'args': [{'metavar': 'UUID...', 'nargs': -1}],
                                               'commands': {}}}},
              'modules': {'help': 'The vfio kernel modules: status, load now, load at boot, load before device '
                                  'drivers; unpersist takes the boot-time part back.',
                          'options': [{'names': ['-h', '--help'],
                                       'value': False,
                                       'help': 'Show this message and exit.'}],
                          'args': [],
                          'commands': {'status': {'help': 'vfio, vfio_iommu_type1, vfio_pci (and vfio_virqfd '
                                                          'before 6.2): loaded, built in, available or missing.',
                                                  'options': [{'names': ['--output', '-o'],
                                                               'value': True,
                                                               'choices': ['table', 'json', 'yaml'],
                                                               'help': 'Output format: table, json or yaml. '
                                                                       '(default table; may also come before the '
                                                                       'command)'},
                                                              {'names': ['-h', '--help'],
                                                               'value': False,
                                                               'help': 'Show this message and exit.'}],
                                                  'args': [],
                                                  'commands': {}},
                                       'load': {'help': 'Load vfio-pci and what it needs with modprobe; built-in '
                                                        'modules count as present.',
                                                'options': [{'names': ['--persist'],
                                                             'value': False,
                                                             'help': 'Also load them at every boot '
                                                                     '(/etc/modules-load.d/hostdev-vfio.conf).'},
                                                            {'names': ['--early'],
                                                             'value': True,
                                                             'metavar': 'ADDR',
                                                             'help': "Make this device's driver wait for vfio-pci "
                                                                     '(modprobe.d softdep), so that early binding '
                                                                     'wins (repeatable).'},
                                                            {'names': ['--initramfs'],
                                                             'value': False,
                                                             'help': 'With --early: regenerate the initramfs '
                                                                     '(update-initramfs, dracut or mkinitcpio).'},
                                                            {'names': ['--dry-run', '-n'],
                                                             'value': False,
                                                             'help': 'Print the plan; change nothing.'},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'Output format: table, json or yaml. (default '
                                                                     'table; may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [],
                                                'commands': {}},
                                       'unpersist': {'help': "Undo 'modules load --persist/--early': remove the "
                                                             'files it wrote (modules-load.d, the modprobe.d '
                                                             'softdep)\n'
                                                             'and regenerate the initramfs that carries them. The '
                                                             'modules stay loaded until the next boot. A file that '
                                                             'is\n'
                                                             "no longer hostdev's text is refused (exit 3), "
                                                             'nothing changed.',
                                                     'options': [{'names': ['--dry-run', '-n'],
                                                                  'value': False,
                                                                  'help': 'Print the plan; change nothing.'},
                                                                 {'names': ['--output', '-o'],
                                                                  'value': True,
                                                                  'choices': ['table', 'json', 'yaml'],
                                                                  'help': 'Output format: table, json or yaml. '
                                                                          '(default table; may also come before '
                                                                          'the command)'},
                                                                 {'names': ['-h', '--help'],
                                                                  'value': False,
                                                                  'help': 'Show this message and exit.'}],
                                                     'args': [],
                                                     'commands': {}}}},
              'sriov': {'help': 'SR-IOV virtual functions: enable and disable them on a physical function.',
                        'options': [{'names': ['-h', '--help'],
                                     'value': False,
                                     'help': 'Show this message and exit.'}],
                        'args': [],
                        'commands': {'enable': {'help': 'Give a PF exactly N VFs (writes 0 first when changing a '
                                                        'non-zero count), optionally bound to vfio-pci.',
                                                'options': [{'names': ['--vfs'],
                                                             'value': True,
                                                             'metavar': 'N',
                                                             'help': 'How many VFs the PF should have (1 to '
                                                                     'sriov_totalvfs).'},
                                                            {'names': ['--bind'],
                                                             'value': True,
                                                             'metavar': 'DRIVER',
                                                             'help': 'Then bind every VF to DRIVER (vfio-pci); '
                                                                     "'hostdev restore' undoes it."},
                                                            {'names': ['--dry-run', '-n'],
                                                             'value': False,
                                                             'help': 'Print the plan; change nothing (Ansible '
                                                                     'check mode).'},
                                                            {'names': ['--force'],
                                                             'value': False,
                                                             'help': 'Override the safety interlocks on VFs that '
                                                                     'are removed or bound (a routed VF netdev, a '
                                                                     'mounted disk).'},
                                                            {'names': ['--output', '-o'],
                                                             'value': True,
                                                             'choices': ['table', 'json', 'yaml'],
                                                             'help': 'Output format: table, json or yaml. (default '
                                                                     'table; may also come before the command)'},
                                                            {'names': ['-h', '--help'],
                                                             'value': False,
                                                             'help': 'Show this message and exit.'}],
                                                'args': [{'metavar': 'PF', 'nargs': 1}],
                                                'commands': {}},
                                     'disable': {'help': 'Remove every VF of a PF (refused while a VM holds one).',
                                                 'options': [{'names': ['--dry-run', '-n'],
                                                              'value': False,
                                                              'help': 'Print the plan; change nothing (Ansible '
                                                                      'check mode).'},
                                                             {'names': ['--force'],
                                                              'value': False,
                                                              'help': 'Override the safety interlocks on VFs that '
                                                                      'are removed or bound (a routed VF netdev, a '
                                                                      'mounted disk).'},
                                                             {'names': ['--output', '-o'],
                                                              'value': True,
                                                              'choices': ['table', 'json', 'yaml'],
                                                              'help': 'Output format: table, json or yaml. '
                                                                      '(default table; may also come before the '
                                                                      'command)'},
                                                             {'names': ['-h', '--help'],
                                                              'value': False,
                                                              'help': 'Show this message and exit.'}],
                                                 'args': [{'metavar': 'PF', 'nargs': 1}],
                                                 'commands': {}}}},
              'vm': {'help': 'Test VMs: prove device assignment through libvirt.',
                     'options': [{'names': ['-h', '--help'],
                                  'value': False,
                                  'help': 'Show this message and exit.'}],
                     'args': [],
                     'commands': {'test': {'help': 'Start a transient libvirt domain with the device (or mdev), '
                                                   'check it is attached and on\n'
                                                   'vfio-pci, destroy the domain and check the device went back to '
                                                   'its driver.',
                                           'options': [{'names': ['--mdev'],
                                                        'value': True,
                                                        'metavar': 'UUID',
                                                        'help': 'Test this mdev instead.'},
                                                       {'names': ['--connect', '-c'],
                                                        'value': True,
                                                        'metavar': 'URI',
                                                        'help': 'libvirt URI.'},
                                                       {'names': ['--memory'],
                                                        'value': True,
                                                        'metavar': 'MiB',
                                                        'help': 'Guest memory in MiB.'},
                                                       {'names': ['--timeout'],
                                                        'value': True,
                                                        'metavar': 'S',
                                                        'help': 'Seconds to wait for the domain to run.'},
                                                       {'names': ['--keep'],
                                                        'value': False,
                                                        'help': 'Leave the domain running (virsh destroy it '
                                                                'after).'},
                                                       {'names': ['--virt-type'],
                                                        'value': True,
                                                        'choices': ['auto', 'kvm', 'qemu'],
                                                        'help': 'kvm or qemu (TCG); auto: kvm when /dev/kvm '
                                                                'exists.'},
                                                       {'names': ['--force'],
                                                        'value': False,
                                                        'help': 'Let libvirt take a device the interlocks '
                                                                'protect.'},
                                                       {'names': ['--dry-run', '-n'],
                                                        'value': False,
                                                        'help': 'Print the domain XML; start nothing.'},
                                                       {'names': ['--boot'],
                                                        'value': False,
                                                        'help': "Boot a minimal guest (the host's own kernel, or "
                                                                '--kernel, with an initramfs hostdev builds) that '
                                                                'reports the PCI IDs it sees; the device must be '
                                                                'among them.'},
                                                       {'names': ['--kernel'],
                                                        'value': True,
                                                        'metavar': 'PATH',
                                                        'help': "Boot this kernel in the guest (a path libvirt's "
                                                                "QEMU can read); without --initrd, hostdev's "
                                                                'reporting initramfs.'},
                                                       {'names': ['--initrd'],
                                                        'value': True,
                                                        'metavar': 'PATH',
                                                        'help': 'Your own initramfs for --kernel (no report is '
                                                                'read from it).'},
                                                       {'names': ['--cmdline'],
                                                        'value': True,
                                                        'metavar': 'ARGS',
                                                        'help': 'Kernel command line (default: console=ttyS0 '
                                                                'panic=-1 loglevel=3 no_timer_check).'},
                                                       {'names': ['--boot-timeout'],
                                                        'value': True,
                                                        'metavar': 'S',
                                                        'help': 'Seconds for the booted guest to report and power '
                                                                'off.'},
                                                       {'names': ['--phys-bits'],
                                                        'value': True,
                                                        'metavar': 'N|auto',
                                                        'choices': ['auto'],
                                                        'help': 'Give the guest CPU N physical address bits (the '
                                                                "firmware's 64-bit MMIO window grows with them); "
                                                                "auto: what 'hostdev check ADDR' recommends for "
                                                                "the device's BARs."},
                                                       {'names': ['--output', '-o'],
                                                        'value': True,
                                                        'choices': ['table', 'json', 'yaml'],
                                                        'help': 'Output format: table, json or yaml. (default '
                                                                'table; may also come before the command)'},
                                                       {'names': ['-h', '--help'],
                                                        'value': False,
                                                        'help': 'Show this message and exit.'}],
                                           'args': [{'metavar': '[ADDR]', 'nargs': 1}],
                                           'commands': {}}}}}}
