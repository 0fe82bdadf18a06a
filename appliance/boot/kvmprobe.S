/* KVM probe firmware: real mode -> protected mode -> long mode with paging,
   then "outb 0x2a, 0xf4" so isa-debug-exit ends QEMU with status 85. */
	.code16
	.globl _start
_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl %cs:(gdt_desc - _start)
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $0x08, $pm32
	.code32
pm32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movl $0x1000, %edi
	xorl %eax, %eax
	movl $0xc00, %ecx
	rep stosl
	movl $0x2003, 0x1000
	movl $0x3003, 0x2000
	movl $0x83, 0x3000
	movl $0x1000, %eax
	movl %eax, %cr3
	movl %cr4, %eax
	orl $0x20, %eax
	movl %eax, %cr4
	movl $0xc0000080, %ecx
	rdmsr
	orl $0x100, %eax
	wrmsr
	movl %cr0, %eax
	orl $0x80000000, %eax
	movl %eax, %cr0
	ljmp $0x18, $lm64
	.code64
lm64:
	movb $0x2a, %al
	outb %al, $0xf4
1:	hlt
	jmp 1b
	.p2align 3
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
	.quad 0x00af9a000000ffff
gdt_desc:
	.word gdt_desc - gdt - 1
	.long gdt
	.org 0xfff0
	.code16
	ljmp $0xf000, $0
	.org 0x10000
